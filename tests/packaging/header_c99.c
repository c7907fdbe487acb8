// SPDX-License-Identifier: MIT
/* icap.h must compile as strict C99 with every warning as an error. */
#include <icap/icap.h>

int main(void) {
  icap_server *srv = 0;
  (void)srv;
  return icap_version() == ICAP_VERSION_HEX ? 0 : 1;
}

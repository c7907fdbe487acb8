// SPDX-License-Identifier: MIT
// icap.h must compile as C++ (as C++17 and with -pedantic) without warnings.
#include <icap/icap.h>

int main() {
  icap_server *srv = nullptr;
  (void)srv;
  return icap_strerror(ICAP_EINVAL)[0] ? 0 : 1;
}

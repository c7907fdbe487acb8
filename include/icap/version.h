// SPDX-License-Identifier: MIT
/* libicap version. The numbers are also read by CMakeLists.txt. */
#ifndef ICAP_VERSION_H
#define ICAP_VERSION_H

#define ICAP_VERSION_MAJOR 0
#define ICAP_VERSION_MINOR 1
#define ICAP_VERSION_PATCH 0
#define ICAP_VERSION_STRING "0.1.0"
/* (major << 16) | (minor << 8) | patch, comparable with icap_version(). */
#define ICAP_VERSION_HEX \
  ((ICAP_VERSION_MAJOR << 16) | (ICAP_VERSION_MINOR << 8) | ICAP_VERSION_PATCH)

#endif /* ICAP_VERSION_H */

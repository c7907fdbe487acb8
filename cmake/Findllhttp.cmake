# SPDX-License-Identifier: MIT
# Findllhttp: locate llhttp, either as an installed library (CMake package or
# pkg-config) or as the C sources that Debian 12's node-llhttp package ships.
#
# Result: an imported/static target `llhttp::llhttp` and llhttp_FOUND.
# With the sources, the target is a hidden-visibility, position-independent
# static library, so that it can be folded into libicap.so without exporting
# any llhttp symbol.

if(TARGET llhttp::llhttp)
  set(llhttp_FOUND TRUE)
  return()
endif()

# 1. A system llhttp with a CMake package (newer Debian/Ubuntu: libllhttp-dev).
find_package(llhttp CONFIG QUIET)
if(TARGET llhttp::llhttp)
  set(llhttp_FOUND TRUE)
  set(llhttp_SOURCE_BUILD FALSE)
  return()
endif()

# 2. pkg-config.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_LLHTTP QUIET IMPORTED_TARGET libllhttp)
  if(PC_LLHTTP_FOUND)
    add_library(llhttp::llhttp ALIAS PkgConfig::PC_LLHTTP)
    set(llhttp_FOUND TRUE)
    set(llhttp_SOURCE_BUILD FALSE)
    return()
  endif()
endif()

# 3. The C sources of node-llhttp (Debian 12).
find_path(LLHTTP_SOURCE_DIR NAMES llhttp.c api.c http.c
          PATHS /usr/share/llhttp NO_DEFAULT_PATH)
find_path(LLHTTP_INCLUDE_DIR NAMES llhttp.h
          PATHS /usr/share/include/llhttp /usr/include/llhttp /usr/include
          NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(llhttp
  REQUIRED_VARS LLHTTP_SOURCE_DIR LLHTTP_INCLUDE_DIR
  REASON_FAILURE_MESSAGE
  "install libllhttp-dev or, on Debian 12, node-llhttp (C sources in /usr/share/llhttp)")

if(llhttp_FOUND)
  set(llhttp_SOURCE_BUILD TRUE)
  add_library(icap_llhttp STATIC
    ${LLHTTP_SOURCE_DIR}/llhttp.c
    ${LLHTTP_SOURCE_DIR}/api.c
    ${LLHTTP_SOURCE_DIR}/http.c)
  target_include_directories(icap_llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
  set_target_properties(icap_llhttp PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden)
  # Generated code: its warnings are not ours to fix.
  target_compile_options(icap_llhttp PRIVATE -w)
  add_library(llhttp::llhttp ALIAS icap_llhttp)
endif()

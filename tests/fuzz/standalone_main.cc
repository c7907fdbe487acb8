// SPDX-License-Identifier: MIT
// A main() for fuzz targets without libFuzzer: runs every file named on the
// command line, and every regular file of every directory named (not
// recursive), through LLVMFuzzerTestOneInput() once, in name order. ctest
// uses it to replay the checked-in corpus with any compiler
// (fuzz.replay.<target>); a failing invariant aborts, and the file being run
// is printed first.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_common.hpp"

namespace {

char g_current[4096];

void on_fatal(int sig) {
  static const char msg[] = "\nstandalone fuzz driver: crashed while running ";
  ssize_t rc = write(2, msg, sizeof msg - 1);
  rc = write(2, g_current, strlen(g_current));
  rc = write(2, "\n", 1);
  (void)rc;
  signal(sig, SIG_DFL);
  raise(sig);
}

bool is_dir(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void list_dir(const std::string &dir, std::vector<std::string> &out) {
  DIR *d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string p = dir + "/" + e->d_name;
    if (!is_dir(p)) names.push_back(p);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  out.insert(out.end(), names.begin(), names.end());
}

}  // namespace

int main(int argc, char **argv) {
  signal(SIGABRT, on_fatal);
  signal(SIGSEGV, on_fatal);
  signal(SIGBUS, on_fatal);
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') continue;  // libFuzzer-style flags are ignored
    if (is_dir(argv[i]))
      list_dir(argv[i], files);
    else
      files.push_back(argv[i]);
  }
  if (files.empty()) {
    fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  size_t bytes = 0;
  for (const std::string &f : files) {
    snprintf(g_current, sizeof g_current, "%s", f.c_str());
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      fprintf(stderr, "cannot read %s\n", f.c_str());
      return 1;
    }
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes += data.size();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(data.data()), data.size());
  }
  printf("%s: %zu inputs (%zu bytes) replayed, no invariant failed\n", argv[0], files.size(),
         bytes);
  return 0;
}

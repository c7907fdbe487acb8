# SPDX-License-Identifier: MIT
# The PASS/FAIL tally of the check scripts (sourced, bash): each check
# prints one line, and the script's exit status comes from NFAIL.

NPASS=0
NFAIL=0
pass() { echo "PASS $1"; NPASS=$((NPASS + 1)); }
fail() { echo "FAIL $1: $2"; NFAIL=$((NFAIL + 1)); }
skip() { echo "SKIP $1: $2"; }
# result NAME REASON: an empty REASON (or one of only "; " separators) is a
# pass, anything else the reason of a failure.
result() {
    local r=$2
    while [[ "$r" == *[\;\ ] ]]; do r=${r%?}; done    # drop trailing "; "
    if [ -z "$r" ]; then pass "$1"; else fail "$1" "$r"; fi
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

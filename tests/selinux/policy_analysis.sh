#!/usr/bin/env bash
# Builds the SELinux module of selinux/, links it with the installed reference policy into a
# throw-away store and asserts with setools what the module must and must not allow
# (ARCHITECTURE.md §11, "SELinux"; the assertions are in policy_assertions.py). Exit 77
# (skip) when a tool is missing.
#
#   tests/selinux/policy_analysis.sh SOURCE_DIR [WORK_DIR]
#
# VMM_SELINUX_EXTRA_TE: a line appended to vmm.te before building, to check that the
# assertions fail when the policy is broken (e.g. "allow vmm_vtpm_t vmm_image_t:file read;").
set -euo pipefail

src=${1:?usage: policy_analysis.sh SOURCE_DIR [WORK_DIR]}
# shellcheck source-path=SCRIPTDIR source=policy_lib.sh
. "$(dirname "$0")/policy_lib.sh"
devel_makefile=$vmm_selinux_devel_makefile
store=$vmm_selinux_store

skip() {
  echo "SKIP: $*"
  exit 77
}
[ -f "$devel_makefile" ] || skip "$devel_makefile missing: install selinux-policy-dev"
[ -d "$store" ] || skip "$store missing: install selinux-policy-default"
for tool in semodule seinfo checkmodule; do
  command -v "$tool" >/dev/null ||
    skip "$tool not found: install setools, policycoreutils, semodule-utils and checkpolicy"
done
/usr/bin/python3 -c 'import setools' 2>/dev/null || skip "python3 setools module missing: install setools"

work=$(mktemp -d "${2:-${TMPDIR:-/tmp}}/selinux-analysis.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/module"
cp "$src"/selinux/vmm.te "$src"/selinux/vmm.if "$src"/selinux/vmm.fc "$work/module/"
if [ -n "${VMM_SELINUX_EXTRA_TE:-}" ]; then
  echo "note: appending to vmm.te: $VMM_SELINUX_EXTRA_TE"
  printf '%s\n' "$VMM_SELINUX_EXTRA_TE" >>"$work/module/vmm.te"
fi
vmm_selinux_build_module "$work/module" vmm || exit 1
policy=$(vmm_selinux_link "$work/root" "$work/module/vmm.pp") || exit 1
echo "policy: $(seinfo "$policy" | grep -E 'Policy Version|Types:' | tr -s ' ' | tr '\n' ' ')"

/usr/bin/python3 "$(dirname "$0")/policy_assertions.py" "$policy"

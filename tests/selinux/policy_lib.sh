# shellcheck shell=bash
# Shared by policy_analysis.sh and selinux-guest.sh (ARCHITECTURE.md §11, "SELinux"): build
# policy modules with Debian's selinux-policy-dev and link them with the installed reference
# policy in a throw-away root, never the host's store.

vmm_selinux_devel_makefile=/usr/share/selinux/devel/Makefile
vmm_selinux_store=/var/lib/selinux/default

# vmm_selinux_build_module DIR NAME: builds DIR/NAME.pp from the .te/.if/.fc files in DIR.
vmm_selinux_build_module() {
  make -s -C "$1" -f "$vmm_selinux_devel_makefile" "$2.pp" >"$1/build.log" 2>&1 || {
    cat "$1/build.log"
    echo "FAIL: the module $2 does not build"
    return 1
  }
}

# vmm_selinux_link ROOT MODULE.pp...: copies the installed store and configuration under ROOT
# and links the modules there with every installed one; prints the binary policy's path.
vmm_selinux_link() {
  local root=$1 policy
  shift
  mkdir -p "$root/var/lib/selinux" "$root/etc/selinux"
  cp -a "$vmm_selinux_store" "$root/var/lib/selinux/"
  cp -a /etc/selinux/default "$root/etc/selinux/"
  if ! semodule -p "$root" -s default -n -i "$@" >"$root/semodule.log" 2>&1; then
    cat "$root/semodule.log" >&2
    echo "FAIL: semodule could not link the module with the reference policy" >&2
    return 1
  fi
  policy=$(find "$root/etc/selinux/default/policy" -name 'policy.*' | head -1)
  [ -n "$policy" ] || {
    echo "FAIL: no binary policy was written" >&2
    return 1
  }
  echo "$policy"
}

#!/usr/bin/env bash
# Option parsing for the scripts' `while [[ $# -gt 0 ]]; do case $1 in ...` loops, which take
# `--name value` and `--name=value` alike. Needs the sourcing script's usage_error.
#   while [[ $# -gt 0 ]]; do
#       if [[ $1 == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi  # split --name=value
#       case $1 in
#           --cpus) need_arg "$@"; CPUS=$2; shift 2 ;;
#           ...

# Fails with a usage error unless the option in $1 has a value after it.
need_arg() { [[ $# -ge 2 ]] || usage_error "option $1 needs an argument"; }

#!/usr/bin/env bash
# Every relative link in the repository's Markdown files must lead to a file or directory
# inside the repository: a clone is all a user has. Links to the web (http:, https:,
# mailto:) and to anchors of the same page are not checked.
#   md_links.sh [REPO_ROOT]
set -euo pipefail
ROOT="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)"
cd "$ROOT"
bad=0
checked=0
while IFS= read -r -d '' md; do
  dir="$(dirname "$md")"
  # [text](target) and [text](target "title"); the target up to a space or ')'.
  while IFS= read -r target; do
    case "$target" in
      http:* | https:* | mailto:* | '#'*) continue ;;
    esac
    path="${target%%#*}"
    [ -z "$path" ] && continue
    checked=$((checked + 1))
    resolved="$(realpath -m "$dir/$path")"
    case "$resolved" in
      "$ROOT" | "$ROOT"/*) ;;
      *)
        echo "$md: link to $target leaves the repository" >&2
        bad=$((bad + 1))
        continue
        ;;
    esac
    if [ ! -e "$resolved" ]; then
      echo "$md: link to $target: no such file" >&2
      bad=$((bad + 1))
    fi
  done < <(grep -o '\](\([^) ]*\)' "$md" | sed 's/^](//')
done < <(find . -name '*.md' -not -path './.git/*' -not -path './build*' -not -path './tests/fuzz/corpus/*' -print0)
echo "md_links.sh: $checked relative link(s) checked, $bad broken"
[ "$bad" -eq 0 ]

#!/usr/bin/env bash
# Checks commit messages against CONTRIBUTING.md: a subject of at most 72 characters, a
# blank line, then a body that says why. `make lint` runs it over the commits of the
# branch (BASE..HEAD; BASE defaults to where the branch left main), so history merged
# before the rule stays as it is. The commit-msg hook (hack/hooks/commit-msg) runs it on
# one message as it is written: `git config core.hooksPath hack/hooks`.
#
#   hack/check-commits.sh                    # commits since the merge base with main
#   BASE=origin/main hack/check-commits.sh   # commits since another base
#   hack/check-commits.sh --message-file F   # one message (the hook)
set -euo pipefail

MAX_SUBJECT=72

# Prints what is wrong with the message $1, nothing when it is fine.
problems() {
  local subject blank body
  subject=$(sed -n 1p <<<"$1")
  blank=$(sed -n 2p <<<"$1")
  body=$(sed -n '3,$p' <<<"$1" | grep -v '^[[:space:]]*$' || true)
  if [ "${#subject}" -gt "$MAX_SUBJECT" ]; then
    echo "subject is ${#subject} characters; at most $MAX_SUBJECT: say what changed, and move the rest to the body"
  fi
  if [ -z "$subject" ]; then echo "empty subject"; fi
  if [ -n "$blank" ]; then echo "the second line must be blank (subject, blank line, body)"; fi
  if [ -z "$body" ]; then echo "no body: say why the change is made, in a paragraph after a blank line"; fi
}

if [ "${1:-}" = "--message-file" ]; then
  # Drop git's comment lines (and everything below a scissors line), as git does.
  message=$(sed '/^# ------------------------ >8 ------------------------$/,$d' "$2" | grep -v '^#' || true)
  out=$(problems "$message")
  if [ -n "$out" ]; then
    echo "commit message refused (CONTRIBUTING.md, \"Commits\"):" >&2
    echo "$out" | sed 's/^/  - /' >&2
    exit 1
  fi
  exit 0
fi

base=${BASE:-$(git merge-base HEAD main 2>/dev/null || true)}
if [ -z "$base" ]; then
  echo "check-commits: no main branch to compare with and no BASE given; nothing checked"
  exit 0
fi
failed=0
for sha in $(git rev-list --no-merges "$base..HEAD"); do
  message=$(git log -1 --format=%B "$sha")
  out=$(problems "$message")
  if [ -n "$out" ]; then
    failed=1
    echo "$(git log -1 --format='%h %s' "$sha" | cut -c1-100):"
    echo "$out" | sed 's/^/  - /'
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "Commit messages above do not follow CONTRIBUTING.md (\"Commits\"); reword them (git rebase -i $base) before merging." >&2
  exit 1
fi

#!/usr/bin/env bash
# weight.sh measures, for each trivial streaming program under weight/, what a user
# of it pays: the modules of its own module graph (go list -m all), the modules
# linked into it, the binary's size, and a cold build (a fresh, empty GOCACHE, so the
# standard library is compiled too) with its wall time, CPU time (user+sys, which
# other load on the machine disturbs less than the wall time) and peak memory.
#
# Each program is built in a module of its own in a temporary directory, as a user
# would; kern's programs use kern as committed (git HEAD), exported read-only.
# Run from sdkcheck/: bash weight/weight.sh. It needs the module proxy or a warm
# module cache, and takes a few minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/kern"
git -C "$repo" archive HEAD | tar -x -C "$work/kern"

printf '%-14s %7s %7s %9s %9s %9s %10s\n' program "list-m" linked binary wall cpu-s maxRSS-MB
for prog in openaisdk anthropicsdk kernopenai kernanthropic; do
	dir="$work/$prog"
	mkdir "$dir"
	cp "$here/$prog/main.go" "$dir/"
	(
		cd "$dir"
		go mod init "example.com/$prog" >/dev/null 2>&1
		case $prog in
		openaisdk) go get github.com/openai/openai-go/v3@v3.96.0 >/dev/null 2>&1 ;;
		anthropicsdk) go get github.com/anthropics/anthropic-sdk-go/v2@v2.14.0 >/dev/null 2>&1 ;;
		kern*) go mod edit -require kern@v0.0.0 -replace "kern=$work/kern" ;;
		esac
		go mod tidy >/dev/null 2>&1
		listm=$(go list -m all | wc -l)
		linked=$(go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}' . | sort -u | grep -c . || true)
		cache=$(mktemp -d)
		GOCACHE=$cache /usr/bin/time -v -o time.txt go build -o bin . 
		rm -rf "$cache"
		wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' time.txt)
		cpu=$(awk -F': ' '/(User|System) time \(seconds\)/ {s += $2} END {printf "%.0f", s}' time.txt)
		rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' time.txt)
		size=$(stat -c %s bin)
		printf '%-14s %7s %7s %8.1fM %9s %9s %10s\n' "$prog" "$listm" "$linked" "$(echo "$size/1048576" | bc -l)" "$wall" "$cpu" "$rss"
	)
done

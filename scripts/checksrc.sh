#!/bin/sh
# checksrc.sh [DIR...]: house rules the compiler does not enforce.
# - banned functions (unbounded or error-swallowing): sprintf, vsprintf,
#   strcat, strcpy, strncpy, strtok, atoi, atol, atoll, gets;
# - every fd is close-on-exec from birth: open/openat/socket/accept/pipe/
#   epoll_create/inotify_init/fopen calls must say CLOEXEC (fopen: "e").
# A line carrying the comment "checksrc: allow" (with the reason) is exempt.
# Prints FILE:LINE: rule for each hit; exit 1 when there is any.
set -u
[ $# -gt 0 ] || set -- src tools
files=$(find "$@" -name '*.c' -o -name '*.h' | sort)
[ -n "$files" ] || { echo "checksrc: no sources under $*" >&2; exit 2; }
# shellcheck disable=SC2086
awk '
function report(msg) { printf "%s:%d: %s\n", FILENAME, stmt_line, msg; bad = 1 }
FNR == 1 { in_comment = 0; stmt = ""; }
/checksrc: allow/ { next }
{
        line = $0
        # Strip comments and string literals so they cannot trigger rules.
        out = ""
        while (length(line) > 0) {
                if (in_comment) {
                        p = index(line, "*/")
                        if (!p) { line = ""; break }
                        line = substr(line, p + 2); in_comment = 0; continue
                }
                p = index(line, "/*"); q = index(line, "//")
                if (q && (!p || q < p)) { out = out substr(line, 1, q - 1); line = ""; break }
                if (p) { out = out substr(line, 1, p - 1); line = substr(line, p + 2); in_comment = 1; continue }
                out = out line; line = ""
        }
        code = out
        gsub(/"([^"\\]|\\.)*"/, "\"\"", code)
        if (code ~ /(^|[^_a-zA-Z0-9])(sprintf|vsprintf|strcat|strcpy|strncpy|strtok|atoi|atol|atoll|gets)[ \t]*\(/) {
                stmt_line = FNR
                match(code, /(sprintf|vsprintf|strcat|strcpy|strncpy|strtok|atoi|atol|atoll|gets)[ \t]*\(/)
                report("banned function " substr(code, RSTART, RLENGTH - 1))
        }
        # Join statements that open an fd until their semicolon.
        if (stmt == "" && out ~ /(^|[^_a-zA-Z0-9])(open|openat|socket|accept|pipe|epoll_create|inotify_init|fopen)[ \t]*\(/) {
                stmt = out; stmt_line = FNR
        } else if (stmt != "") {
                stmt = stmt " " out
        }
        if (stmt != "" && index(stmt, ";")) {
                if (stmt ~ /fopen[ \t]*\(/) {
                        if (stmt !~ /fopen[ \t]*\([^,]*,[ \t]*"[rwa+]*e/)
                                report("fopen without \"e\" (close-on-exec) mode")
                } else if (stmt !~ /CLOEXEC/) {
                        report("fd opened without CLOEXEC")
                }
                stmt = ""
        }
}
END { exit bad }
' $files

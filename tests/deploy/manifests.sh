#!/bin/sh
# manifests.sh KFRUN FORGESCALE KUBECTL MANIFEST_DIR
# deploy/kubernetes/ checked against kube-fake (started by KFRUN, which
# prints a kubeconfig's path and keeps the fake up until its stdin ends):
# - kubectl apply --dry-run=client: one "created (dry run)" line per object;
# - kubectl apply --dry-run=server: every object validated strictly by the
#   fake (unknown fields, wrong types, missing required fields);
# - negative controls: copies with an unknown field and a wrong type must
#   be refused, the field named;
# - the configuration in configmap.yaml passes `forgescale check -c`.
# Never touches a real cluster: the kubeconfig names only the fake.
set -u
kfrun=$1 fs=$2 kubectl=$3 dir=$4
tmp=$(mktemp -d) || exit 99
kfpid=
cleanup() {
        exec 7>&-
        [ -n "$kfpid" ] && wait "$kfpid"
        rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# kubectl writes its discovery cache and nothing else under HOME.
HOME=$tmp/home
export HOME
mkdir -p "$HOME" "$tmp/bad"

mkfifo "$tmp/in" || exit 99
"$kfrun" < "$tmp/in" > "$tmp/kfout" 2> "$tmp/kferr" &
kfpid=$!
exec 7> "$tmp/in"
i=0
while [ ! -s "$tmp/kfout" ]; do
        kill -0 "$kfpid" 2>/dev/null || { cat "$tmp/kferr"; fail "kube-fake did not start"; }
        i=$((i + 1))
        [ "$i" -lt 600 ] || fail "kube-fake did not start in 60 s"
        sleep 0.1
done
kc=$(cat "$tmp/kfout")
kctl() { "$kubectl" --kubeconfig "$kc" --cache-dir "$tmp/cache" "$@"; }

objects=$(cat "$dir"/*.yaml | grep -c '^apiVersion:')
[ "$objects" -ge 10 ] || fail "only $objects objects in $dir"

# 1. Client-side dry run (discovery, then a GET per object).
kctl apply --dry-run=client --validate=false -f "$dir/" > "$tmp/client.out" 2>&1 ||
        { cat "$tmp/client.out"; fail "apply --dry-run=client failed"; }
n=$(grep -cE ' (created|configured) \(dry run\)$' "$tmp/client.out")
[ "$n" -eq "$objects" ] ||
        { cat "$tmp/client.out"; fail "apply --dry-run=client: $n of $objects objects"; }
echo "ok: apply --dry-run=client: $n objects"

# 2. Server-side dry run: each object POSTed with dryRun=All and
#    fieldValidation=Strict, checked against the schema by the fake.
kctl apply --dry-run=server -f "$dir/" > "$tmp/server.out" 2>&1 ||
        { cat "$tmp/server.out"; fail "apply --dry-run=server failed"; }
n=$(grep -c ' created (server dry run)$' "$tmp/server.out")
[ "$n" -eq "$objects" ] ||
        { cat "$tmp/server.out"; fail "apply --dry-run=server: $n of $objects objects"; }
echo "ok: apply --dry-run=server: $n objects"

# 3. Negative controls: the same check must refuse a broken copy.
refused() { # FILE FIELD WHAT
        if kctl apply --dry-run=server -f "$1" > "$tmp/neg.out" 2>&1; then
                cat "$tmp/neg.out"
                fail "$3 was accepted"
        fi
        grep -qF -- "$2" "$tmp/neg.out" || { cat "$tmp/neg.out"; fail "$3: $2 not named"; }
        echo "ok: $3 refused: $(head -c 300 "$tmp/neg.out")"
}
sed 's/^  replicas: 1$/  replicass: 1/' "$dir/deployment.yaml" > "$tmp/bad/unknown.yaml"
grep -q '^  replicass: 1$' "$tmp/bad/unknown.yaml" || fail "deployment.yaml has no '  replicas: 1'"
refused "$tmp/bad/unknown.yaml" ".spec.replicass" "an unknown field (spec.replicass)"
sed 's/^  replicas: 1$/  replicas: "one"/' "$dir/deployment.yaml" > "$tmp/bad/type.yaml"
refused "$tmp/bad/type.yaml" ".spec.replicas" "a string for an integer (spec.replicas)"
sed '/^roleRef:$/,/^  name: forgescale$/d' "$dir/rolebinding.yaml" > "$tmp/bad/required.yaml"
grep -q roleRef "$tmp/bad/required.yaml" && fail "rolebinding.yaml: roleRef not removed"
refused "$tmp/bad/required.yaml" "roleRef: Required value" "a missing required field (roleRef)"

# 4. The configuration the ConfigMap carries, read the way kubectl reads it,
#    with the token file pointed at a temp file.
kctl create --dry-run=client -f "$dir/configmap.yaml" \
        -o 'jsonpath={.data.forgescale\.yaml}' > "$tmp/forgescale.yaml" ||
        fail "cannot extract forgescale.yaml from configmap.yaml"
grep -q 'token_file: /etc/forgescale/forge/token$' "$tmp/forgescale.yaml" ||
        fail "configmap.yaml: token_file is not the Secret's mount (/etc/forgescale/forge/token)"
printf 'forge-token\n' > "$tmp/token"
chmod 600 "$tmp/token"
sed "s#token_file: /etc/forgescale/forge/token\$#token_file: $tmp/token#" \
        "$tmp/forgescale.yaml" > "$tmp/check.yaml"
"$fs" check -c "$tmp/check.yaml" > "$tmp/check.out" 2>&1 ||
        { cat "$tmp/check.out"; fail "forgescale check -c refused configmap.yaml's configuration"; }
cat "$tmp/check.out"
echo "ok: forgescale check accepts configmap.yaml's configuration"

# The fake ends cleanly when its launcher's stdin closes (an ASan build of
# it reports leaks and errors through this exit status).
exec 7>&-
wait "$kfpid" || { cat "$tmp/kferr"; kfpid=; fail "kube-fake did not end cleanly"; }
kfpid=
echo "ok: kube-fake ended cleanly"

#!/usr/bin/env bash
# Print the Secret "portcullis-saml" (SAML SP key and certificate, session key) as
# YAML, with keys generated here: nothing secret is kept in the repository.
#
#   examples/k8s-sidecar/make-secret.sh posthog.example.com | kubectl apply -f -
#
# Every replica must share these: the IdP knows one SP certificate (each pod signs
# its AuthnRequests with saml-sp.key, mounted as a file), and a session cookie sealed
# by one replica must open at every other (session.key reaches the sidecar as the
# variable PORTCULLIS_SESSION_KEYS, deployment.yaml; no key file is written).  Run it
# once; run it again only to rotate (then give the IdP the new SP metadata).
#
# To rotate the session key alone, edit session.key in the Secret (keys separated by
# new lines; the first seals, all open) and restart the pods after each step
# (`kubectl -n posthog rollout restart deploy/posthog-web`: the variable is read at
# start).  So that old and new pods open each other's cookies during a rollout:
#   1. add the new key (openssl rand -hex 32) on a second line;
#   2. move it to the first line;
#   3. remove the old key once the sessions it sealed have expired.
#
# Options: -n NAMESPACE (default posthog), -o DIR (also keep the files in DIR, 0700).
set -euo pipefail

usage() {
	echo "usage: make-secret.sh [-n NAMESPACE] [-o DIR] POSTHOG_DOMAIN" >&2
	exit 2
}

namespace=posthog
outdir=
while getopts "n:o:h" opt; do
	case $opt in
	n) namespace=$OPTARG ;;
	o) outdir=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# == 1)) || usage
domain=$1
if [[ ! $domain =~ ^[A-Za-z0-9.-]+$ ]]; then
	echo "make-secret.sh: \"$domain\" is not a host name" >&2
	exit 2
fi
command -v openssl >/dev/null || {
	echo "make-secret.sh: openssl not found" >&2
	exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
# RSA 3072 and a 10-year self-signed certificate, as Portcullis makes them itself.
openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 \
	-subj "/CN=$domain SAML SP" \
	-keyout "$work/saml-sp.key" -out "$work/saml-sp.crt" 2>/dev/null
# One session key: 32 random bytes as 64 hex digits.
openssl rand -hex 32 >"$work/session.key"

if [[ -n $outdir ]]; then
	mkdir -p "$outdir"
	chmod 0700 "$outdir"
	cp "$work/saml-sp.key" "$work/saml-sp.crt" "$work/session.key" "$outdir/"
fi

b64() { base64 -w0 <"$1"; }
cat <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: portcullis-saml
  namespace: $namespace
  labels:
    app.kubernetes.io/name: posthog-web
    app.kubernetes.io/component: edge-proxy
type: Opaque
data:
  saml-sp.key: $(b64 "$work/saml-sp.key")
  saml-sp.crt: $(b64 "$work/saml-sp.crt")
  session.key: $(b64 "$work/session.key")
EOF

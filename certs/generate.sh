#!/usr/bin/env bash
# Generates a self-signed CA and a serving certificate for the asm-cni webhook, with openssl.
# Used by `npm start` (dev certs in certs/dev) and by admins who do not run cert-manager (in-cluster certs).
#
# Output (in --out): ca.crt, ca.key (keep it private; only needed to re-sign), tls.crt, tls.key; optionally
# secret.yaml (Secret asm-cni-webhook-tls: tls.crt, tls.key, ca.crt) and ca-bundle.b64 (the caBundle value of the
# MutatingWebhookConfiguration). Idempotent: existing certificates are kept unless --force.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: certs/generate.sh [options]
  --out DIR            output directory (default: certs/dev)
  --service NAME       Service name of the webhook (default: asm-cni-webhook)
  --namespace NS       namespace of the Service (default: asm-cni)
  --san NAME           extra subject alternative name, DNS name or IP address (repeatable)
  --days N             validity of the serving certificate in days (default: 365)
  --ca-days N          validity of the CA in days (default: 3650)
  --secret             also write secret.yaml (kind Secret, type kubernetes.io/tls)
  --secret-name NAME   name of that Secret (default: asm-cni-webhook-tls)
  --ca-bundle          also write ca-bundle.b64 (base64 of ca.crt, for the webhook's clientConfig.caBundle)
  --force              replace existing certificates (a new CA too: update the caBundle afterwards)
  -h, --help           show this help
SANs always include localhost, 127.0.0.1, ::1, SERVICE, SERVICE.NS, SERVICE.NS.svc, SERVICE.NS.svc.cluster.local.
EOF
}

die() { echo "certs/generate.sh: $*" >&2; exit 2; }

out=certs/dev service=asm-cni-webhook namespace=asm-cni days=365 ca_days=3650
secret=false secret_name=asm-cni-webhook-tls ca_bundle=false force=false
extra_sans=()
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case $1 in
    --out) need_arg "$@"; out=$2; shift 2 ;;
    --service) need_arg "$@"; service=$2; shift 2 ;;
    --namespace) need_arg "$@"; namespace=$2; shift 2 ;;
    --san) need_arg "$@"; extra_sans+=("$2"); shift 2 ;;
    --days) need_arg "$@"; days=$2; shift 2 ;;
    --ca-days) need_arg "$@"; ca_days=$2; shift 2 ;;
    --secret) secret=true; shift ;;
    --secret-name) need_arg "$@"; secret_name=$2; secret=true; shift 2 ;;
    --ca-bundle) ca_bundle=true; shift ;;
    --force) force=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
[[ $days =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive number of days, got '$days'"
[[ $ca_days =~ ^[1-9][0-9]*$ ]] || die "--ca-days must be a positive number of days, got '$ca_days'"
dns_label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ $service =~ $dns_label ]] || die "--service must be a DNS label, got '$service'"
[[ $namespace =~ $dns_label ]] || die "--namespace must be a DNS label, got '$namespace'"
command -v openssl >/dev/null || die "openssl is required (apt-get install openssl)"

mkdir -p "$out"
ca_crt=$out/ca.crt ca_key=$out/ca.key tls_crt=$out/tls.crt tls_key=$out/tls.key

if [ "$force" = false ] && [ -s "$ca_crt" ] && [ -s "$tls_crt" ] && [ -s "$tls_key" ]; then
  echo "certs/generate.sh: keeping the existing certificates in $out (use --force to replace them)"
else
  # Everything is written to a temporary directory and moved into place at the end, so an interrupted run never
  # leaves a certificate next to a key it does not belong to.
  tmp=$(mktemp -d "$out/.generate.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  umask 077
  sans="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:$service,DNS:$service.$namespace,DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local"
  for san in "${extra_sans[@]}"; do
    if [[ $san =~ ^[0-9.]+$ || $san == *:* ]]; then sans+=",IP:$san"; else sans+=",DNS:$san"; fi
  done
  # ECDSA P-256: small, fast handshakes, supported by Go's crypto/tls (the API server's client).
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days "$ca_days" -subj "/O=asm-cni/CN=asm-cni-webhook-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$tmp/ca.crt"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/tls.key" 2>/dev/null
  openssl req -new -key "$tmp/tls.key" -subj "/O=asm-cni/CN=$service.$namespace.svc" -out "$tmp/tls.csr"
  cat >"$tmp/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans
authorityKeyIdentifier=keyid
EOF
  openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/tls.crt" 2>/dev/null
  openssl verify -CAfile "$tmp/ca.crt" "$tmp/tls.crt" >/dev/null
  chmod 644 "$tmp/ca.crt" "$tmp/tls.crt"
  chmod 600 "$tmp/ca.key" "$tmp/tls.key"
  # Key before certificate: a watcher that sees the new certificate finds its key already there.
  mv -f "$tmp/ca.key" "$ca_key"; mv -f "$tmp/ca.crt" "$ca_crt"
  mv -f "$tmp/tls.key" "$tls_key"; mv -f "$tmp/tls.crt" "$tls_crt"
  echo "certs/generate.sh: wrote $ca_crt, $tls_crt, $tls_key (SANs: $sans; valid $days days)"
fi

b64() { base64 -w0 <"$1"; }
if [ "$ca_bundle" = true ]; then
  b64 "$ca_crt" >"$out/ca-bundle.b64"
  chmod 644 "$out/ca-bundle.b64"
  echo "certs/generate.sh: wrote $out/ca-bundle.b64"
fi
if [ "$secret" = true ]; then
  (umask 077
  cat >"$out/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $secret_name
  namespace: $namespace
  labels:
    app.kubernetes.io/name: asm-cni-webhook
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$tls_crt")
  tls.key: $(b64 "$tls_key")
  ca.crt: $(b64 "$ca_crt")
EOF
  )
  echo "certs/generate.sh: wrote $out/secret.yaml (Secret $namespace/$secret_name)"
fi

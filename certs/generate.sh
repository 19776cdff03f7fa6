#!/usr/bin/env bash
# Generates, renews and rotates the asm-cni webhook's CA and serving certificate, with openssl.
# Used by `npm start` (dev certs in certs/dev) and by admins who do not run cert-manager (in-cluster certs).
#
# Files in --out:
#   ca.crt, ca.key       the CA that signs the serving certificate (keep ca.key private: --renew needs it)
#   tls.crt, tls.key     the serving certificate and its key
#   ca-bundle.crt        the CAs the API server trusts: the webhook configuration's caBundle and the Secret's ca.crt.
#                        One CA, or two during a CA rotation.
#   next-ca.crt/.key     a CA rotation's new CA, between `--ca-rotation start` and `switch`
#   previous-ca.crt/.key a CA rotation's old CA, between `--ca-rotation switch` and `finish`
#   secret.yaml, ca-bundle.b64 (optional) the Secret and the caBundle value, for who manages these objects themselves
#
# Why renewal and rotation are separate steps: the API server checks the served certificate against caBundle at once
# (kubectl apply), while webhook pods see a new Secret only at the kubelet's next volume sync (a minute or more). A
# step may therefore only change one side in a way the other side's old state still accepts (docs/install.md).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: certs/generate.sh [options]
  --out DIR            output directory (default: certs/dev)
  --service NAME       Service name of the webhook (default: asm-cni-webhook)
  --namespace NS       namespace of the Service (default: asm-cni)
  --san NAME           extra subject alternative name, DNS name or IP address (repeatable)
  --days N             validity of the serving certificate in days (default: 365)
  --ca-days N          validity of a new CA in days (default: 3650)
  --secret             also write secret.yaml (kind Secret, type kubernetes.io/tls)
  --secret-name NAME   name of that Secret (default: asm-cni-webhook-tls)
  --ca-bundle          also write ca-bundle.b64 (base64 of ca-bundle.crt, for the webhook's clientConfig.caBundle)
  --renew              new serving certificate (new key) signed by the existing CA (needs ca.key); caBundle unchanged
  --ca-rotation STEP   replace the CA in three steps, each applied and propagated before the next:
                         start   make a new CA; trust the old and the new one (ca-bundle.crt holds both)
                         switch  serve a certificate signed by the new CA (both still trusted)
                         finish  trust only the new CA (once every webhook pod serves the new certificate)
  --force              replace everything, the CA too (a fresh install: on a running cluster the API server refuses
                       meshed pods until every webhook pod serves the new certificate; use --renew or --ca-rotation)
  -h, --help           show this help
SANs always include localhost, 127.0.0.1, ::1, SERVICE, SERVICE.NS, SERVICE.NS.svc, SERVICE.NS.svc.cluster.local;
--renew and --ca-rotation switch also keep those of the current certificate.
EOF
}

die() { echo "certs/generate.sh: $*" >&2; exit 2; }
say() { echo "certs/generate.sh: $*"; }

out=certs/dev service=asm-cni-webhook namespace=asm-cni days=365 ca_days=3650
secret=false secret_name=asm-cni-webhook-tls ca_bundle=false mode=create
extra_sans=()
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
set_mode() { [ "$mode" = create ] || [ "$mode" = "$1" ] || die "--force, --renew and --ca-rotation exclude each other"; mode=$1; }
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
    --force) set_mode force; shift ;;
    --renew) set_mode renew; shift ;;
    --ca-rotation)
      need_arg "$@"
      case $2 in start|switch|finish) set_mode "rotate-$2" ;; *) die "--ca-rotation takes start, switch or finish, got '$2'" ;; esac
      shift 2 ;;
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
ca_crt=$out/ca.crt ca_key=$out/ca.key tls_crt=$out/tls.crt tls_key=$out/tls.key bundle=$out/ca-bundle.crt
next_crt=$out/next-ca.crt next_key=$out/next-ca.key prev_crt=$out/previous-ca.crt prev_key=$out/previous-ca.key

# Everything is written to a temporary directory and moved into place at the end, so an interrupted run never
# leaves a certificate next to a key it does not belong to.
tmp=$(mktemp -d "$out/.generate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

# make_ca NAME: $tmp/NAME.crt and $tmp/NAME.key, a new self-signed CA (ECDSA P-256: small, fast handshakes, supported
# by Go's crypto/tls, the API server's client). The serial keeps two CAs of one name apart in logs and bundles.
make_ca() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$tmp/$1.key" -sha256 -days "$ca_days" -subj "/O=asm-cni/CN=asm-cni-webhook-ca" \
    -set_serial "0x$(openssl rand -hex 16)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$tmp/$1.crt"
}

# The SANs of a certificate as openssl config entries (DNS:x,IP:y), or nothing when it has none. openssl prints ::1
# in full; it is written back the way the defaults spell it, so it is not listed twice.
sans_of() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ' | tr ',' '\n' |
    sed 's/^IPAddress:/IP:/; s/^IP:0:0:0:0:0:0:0:1$/IP:::1/' | paste -sd, -
}

# sign CA_CRT CA_KEY [KEEP_SANS_FROM]: $tmp/tls.crt and $tmp/tls.key, a new key and certificate signed by that CA.
sign() {
  local sans="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:$service,DNS:$service.$namespace,DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local"
  local san
  for san in "${extra_sans[@]}"; do
    if [[ $san =~ ^[0-9.]+$ || $san == *:* ]]; then sans+=",IP:$san"; else sans+=",DNS:$san"; fi
  done
  if [ -n "${3:-}" ] && [ -s "$3" ]; then
    local kept
    kept=$(sans_of "$3" || true)
    [ -n "$kept" ] && sans+=",$kept"
  fi
  # Each SAN once (the defaults and the kept ones overlap).
  sans=$(tr ',' '\n' <<<"$sans" | awk 'NF && !seen[$0]++' | paste -sd, -)
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/tls.key" 2>/dev/null
  openssl req -new -key "$tmp/tls.key" -subj "/O=asm-cni/CN=$service.$namespace.svc" -out "$tmp/tls.csr"
  cat >"$tmp/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans
authorityKeyIdentifier=keyid
EOF
  openssl x509 -req -in "$tmp/tls.csr" -CA "$1" -CAkey "$2" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/tls.crt" 2>/dev/null \
    || die "cannot sign: $2 is not the private key of $1"
  openssl verify -CAfile "$1" "$tmp/tls.crt" >/dev/null 2>&1 || die "$2 is not the private key of $1"
  signed_sans=$sans
}

# Puts $tmp/NAME.{key,crt} in place as DEST.{key,crt}: key before certificate, so a watcher that sees the new
# certificate finds its key already there.
install_pair() {
  chmod 600 "$tmp/$1.key"; chmod 644 "$tmp/$1.crt"
  mv -f "$tmp/$1.key" "$2.key"; mv -f "$tmp/$1.crt" "$2.crt"
}

# write_bundle CA...: ca-bundle.crt, the concatenated PEM certificates.
write_bundle() {
  cat "$@" >"$tmp/ca-bundle.crt"
  chmod 644 "$tmp/ca-bundle.crt"
  mv -f "$tmp/ca-bundle.crt" "$bundle"
}

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
signed_by() { openssl verify -CAfile "$2" "$1" >/dev/null 2>&1; }
have() { [ -s "$1" ]; }
next_step() { say "next: $*"; }

case $mode in
  create|force)
    if [ "$mode" = create ] && have "$ca_crt" && have "$tls_crt" && have "$tls_key"; then
      say "keeping the existing certificates in $out (--renew for a new serving certificate from the same CA)"
      # Written by versions before ca-bundle.crt existed: the bundle is the one CA.
      if ! have "$bundle"; then write_bundle "$ca_crt"; say "wrote $bundle (the CA, as caBundle)"; fi
    else
      make_ca ca
      sign "$tmp/ca.crt" "$tmp/ca.key"
      install_pair ca "$out/ca"
      install_pair tls "$out/tls"
      rm -f "$next_crt" "$next_key" "$prev_crt" "$prev_key"
      write_bundle "$ca_crt"
      say "wrote $ca_crt, $tls_crt, $tls_key, $bundle (SANs: $signed_sans; valid $days days)"
    fi ;;
  renew)
    have "$ca_crt" || die "--renew signs a new serving certificate with the existing CA, but $ca_crt is missing (no certificates yet: run without --renew)"
    have "$ca_key" || die "--renew needs the CA's private key $ca_key to sign with the same CA, and it is missing. Without it, replace the CA with --ca-rotation start, switch, finish (docs/install.md, \"Rotating the CA\")"
    have "$bundle" || write_bundle "$ca_crt"
    sign "$ca_crt" "$ca_key" "$tls_crt"
    install_pair tls "$out/tls"
    say "renewed $tls_crt (serial $(serial_of "$tls_crt"), valid $days days), signed by the existing CA $ca_crt; $bundle unchanged"
    next_step "kubectl apply -k (the Secret changes, caBundle does not); webhook pods switch at their next volume sync" ;;
  rotate-start)
    have "$ca_crt" || die "--ca-rotation start: $ca_crt is missing: nothing to rotate from (a first install runs without options)"
    if have "$next_crt"; then die "--ca-rotation start: a rotation is already under way ($next_crt exists); its next step is --ca-rotation switch"; fi
    if have "$prev_crt"; then die "--ca-rotation start: the previous rotation is not finished ($prev_crt exists); its next step is --ca-rotation finish"; fi
    make_ca next
    install_pair next "$out/next-ca"
    write_bundle "$ca_crt" "$next_crt"
    say "made a new CA $next_crt (serial $(serial_of "$next_crt")); $bundle now holds the current and the new CA; $tls_crt unchanged"
    next_step "kubectl apply -k; then --ca-rotation switch once the stored caBundle holds both CAs (docs/install.md)" ;;
  rotate-switch)
    have "$next_crt" && have "$next_key" || die "--ca-rotation switch: no new CA ($next_crt and $next_key): run --ca-rotation start first, and apply it"
    have "$ca_crt" || die "--ca-rotation switch: $ca_crt is missing"
    sign "$next_crt" "$next_key" "$tls_crt"
    # The old CA stays trusted as previous-ca until finish; its key is kept beside it (nothing signs with it now).
    mv -f "$ca_crt" "$prev_crt"
    if have "$ca_key"; then mv -f "$ca_key" "$prev_key"; fi
    mv -f "$next_key" "$ca_key"; mv -f "$next_crt" "$ca_crt"
    install_pair tls "$out/tls"
    write_bundle "$ca_crt" "$prev_crt"
    say "serving certificate $tls_crt (serial $(serial_of "$tls_crt")) now signed by the new CA $ca_crt; $bundle still holds both CAs"
    next_step "kubectl apply -k; then --ca-rotation finish once every webhook pod serves this certificate (docs/install.md)" ;;
  rotate-finish)
    if have "$next_crt"; then die "--ca-rotation finish: the serving certificate is not from the new CA yet ($next_crt exists): run --ca-rotation switch first, and apply it"; fi
    have "$prev_crt" || die "--ca-rotation finish: no rotation under way ($prev_crt is missing)"
    signed_by "$tls_crt" "$ca_crt" || die "--ca-rotation finish: $tls_crt is not signed by $ca_crt; dropping the other CA would refuse it"
    write_bundle "$ca_crt"
    rm -f "$prev_crt" "$prev_key"
    say "$bundle now holds only the CA $ca_crt (serial $(serial_of "$ca_crt")); the previous CA is removed"
    next_step "kubectl apply -k" ;;
esac

b64() { base64 -w0 <"$1"; }
if [ "$ca_bundle" = true ]; then
  b64 "$bundle" >"$out/ca-bundle.b64"
  chmod 644 "$out/ca-bundle.b64"
  say "wrote $out/ca-bundle.b64"
fi
if [ "$secret" = true ]; then
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
  ca.crt: $(b64 "$bundle")
EOF
  say "wrote $out/secret.yaml (Secret $namespace/$secret_name)"
fi

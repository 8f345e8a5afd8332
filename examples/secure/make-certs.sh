#!/bin/sh
# Writes test certificates for examples/secure/config.toml into DIR (default: certs):
#   ca.pem, ca-key.pem          a test CA
#   broker.pem, broker-key.pem  the broker's certificate (127.0.0.1 and localhost) and key
#   client.pem, client-key.pem  a client certificate (subject CN=client,OU=eng,O=acme)
# For tests and trying the broker out only: the keys are not encrypted and last 30 days.
set -eu
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
days=30

openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=broker test CA" \
    -keyout ca-key.pem -out ca.pem 2>/dev/null

openssl req -newkey rsa:2048 -nodes -subj "/CN=broker" \
    -keyout broker-key.pem -out broker.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > broker.ext
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days "$days" -extfile broker.ext -out broker.pem 2>/dev/null

openssl req -newkey rsa:2048 -nodes -subj "/O=acme/OU=eng/CN=client" \
    -keyout client-key.pem -out client.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days "$days" -extfile client.ext -out client.pem 2>/dev/null

rm -f broker.csr broker.ext client.csr client.ext ca.srl
chmod 600 ca-key.pem broker-key.pem client-key.pem
echo "wrote ca.pem, broker.pem, broker-key.pem, client.pem, client-key.pem in $dir"

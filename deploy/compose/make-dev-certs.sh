#!/usr/bin/env bash
# Development PKI and credentials for compose.sasl-ssl.yaml. NEVER use them in production.
#
#   ./make-dev-certs.sh [OUT_DIR]        (default: ./secrets next to this script)
#
# Writes (the CA key goes to ca/ beside OUT_DIR, which no container mounts):
#   secrets/kafka/             broker: kafka.p12, kafka.env (its passwords), ca.crt, JAAS file,
#                              client.properties (the broker's own identity, for healthchecks)
#   secrets/admin/             kafka-setup: admin.p12, admin.properties, ca.crt, and the SCRAM
#                              password of every principal it creates (<principal>.password)
#   secrets/sozialhub-hub/     the worker:    ca.crt client.crt client.key sozialhub.toml
#   secrets/sozialhub-topics/  the topic job: ca.crt client.crt client.key sozialhub.toml
#   secrets/vendor-<v>/        one per vendor: ca.crt client.crt client.key password
#                              librdkafka.properties (for kcat -F / confluent-kafka on the host)
# Needs openssl >= 1.1.1. Files are world-readable so that the container users
# (Kafka uid 1000, hub uid 10001 or yours) can read the bind mounts: dev only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-$here/secrets}" && cd "${1:-$here/secrets}" && pwd)
ca_dir=$(dirname "$out")/ca
vendors=${VENDORS:-akdn}  # the kafka-channel vendors of config/offices.yml
days=${DAYS:-365}

if [ -n "$(ls -A "$out")" ]; then
  echo "$out is not empty; remove it (and $ca_dir) to make new credentials" >&2
  exit 1
fi
umask 022
mkdir -p "$ca_dir"
secret() { openssl rand -hex 24; }   # hex: safe inside SCRAM and properties syntax

openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days "$days" -subj "/CN=sozialhub dev CA" \
  -keyout "$ca_dir/ca.key" -out "$ca_dir/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
chmod 600 "$ca_dir/ca.key"

# issue DIR CN EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME] -> DIR/client.crt, DIR/client.key
issue() {
  local dir=$1 cn=$2 eku=$3 san=${4:-}
  mkdir -p "$dir"
  openssl req -new -newkey rsa:3072 -nodes -subj "/CN=$cn" \
    -keyout "$dir/client.key" -out "$dir/client.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } > "$dir/ext.cnf"
  openssl x509 -req -sha256 -days "$days" -in "$dir/client.csr" -CA "$ca_dir/ca.crt" \
    -CAkey "$ca_dir/ca.key" -CAcreateserial -CAserial "$ca_dir/ca.srl" \
    -extfile "$dir/ext.cnf" -out "$dir/client.crt" 2>/dev/null
  rm -f "$dir/client.csr" "$dir/ext.cnf"
  cp "$ca_dir/ca.crt" "$dir/ca.crt"
}

# pkcs12 DIR NAME -> DIR/NAME.p12 from DIR/client.{crt,key}; prints the password
pkcs12() {
  local dir=$1 name=$2 password
  password=$(secret)
  openssl pkcs12 -export -name "$name" -in "$dir/client.crt" -inkey "$dir/client.key" \
    -certfile "$ca_dir/ca.crt" -out "$dir/$name.p12" -passout "pass:$password"
  rm -f "$dir/client.crt" "$dir/client.key"
  echo "$password"
}

# Broker: server and client (towards the controller listener) in one certificate.
issue "$out/kafka" kafka serverAuth,clientAuth "DNS:kafka,DNS:localhost,IP:127.0.0.1"
kafka_pw=$(pkcs12 "$out/kafka" kafka)
printf 'KAFKA_SSL_KEYSTORE_PASSWORD=%s\nKAFKA_SSL_KEY_PASSWORD=%s\n' "$kafka_pw" "$kafka_pw" \
  > "$out/kafka/kafka.env"
cat > "$out/kafka/kafka_server_jaas.conf" <<'EOF'
KafkaServer {
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
EOF
cat > "$out/kafka/client.properties" <<EOF
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.crt
ssl.keystore.type=PKCS12
ssl.keystore.location=/etc/kafka/secrets/kafka.p12
ssl.keystore.password=$kafka_pw
EOF

# Admin tool identity (User:CN=admin, a super user) for kafka-setup.sh.
issue "$out/admin" admin clientAuth
admin_pw=$(pkcs12 "$out/admin" admin)
cat > "$out/admin/admin.properties" <<EOF
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.crt
ssl.keystore.type=PKCS12
ssl.keystore.location=/etc/kafka/secrets/admin.p12
ssl.keystore.password=$admin_pw
EOF

# Hub principals: the SCRAM password in a settings file (read via SOZIALHUB_CONFIG).
for principal in sozialhub-hub sozialhub-topics; do
  issue "$out/$principal" "$principal" clientAuth
  password=$(secret)
  echo "$password" > "$out/admin/$principal.password"
  printf '[sozialhub]\nsasl_password = "%s"\n' "$password" > "$out/$principal/sozialhub.toml"
done

# Vendors: consumers of their own topic only (see kafka-setup.sh).
for vendor in $vendors; do
  principal=vendor-$vendor
  issue "$out/$principal" "$principal" clientAuth
  password=$(secret)
  echo "$password" > "$out/admin/$principal.password"
  echo "$password" > "$out/$principal/password"
  cat > "$out/$principal/librdkafka.properties" <<EOF
bootstrap.servers=localhost:9092
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=$principal
sasl.password=$password
ssl.ca.location=$out/$principal/ca.crt
ssl.certificate.location=$out/$principal/client.crt
ssl.key.location=$out/$principal/client.key
group.id=$principal.outbound
EOF
done

chmod -R a+rX "$out"
echo "development credentials written to $out (CA key: $ca_dir/ca.key)"

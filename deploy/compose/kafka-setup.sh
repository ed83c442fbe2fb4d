#!/usr/bin/env bash
# One-shot setup for compose.sasl-ssl.yaml: SCRAM-SHA-512 users and ACLs. Idempotent.
#
# Runs in the apache/kafka image as User:CN=admin (client certificate, a super user) on
# the INTERNAL listener. The ACLs are the same least-privilege model as
# deploy/kubernetes/kafka-users.yaml (checked by tests/unit/test_deploy.py); keep both in step.
# Passwords come from /etc/kafka/secrets/<principal>.password (make-dev-certs.sh).
set -euo pipefail

bootstrap=${BOOTSTRAP:-kafka:19092}
prefix=${TOPIC_PREFIX:-sozialhub.}
vendors=${VENDORS:-akdn}  # the kafka-channel vendors of config/offices.yml
secrets=/etc/kafka/secrets
admin=(--bootstrap-server "$bootstrap" --command-config "$secrets/admin.properties")
bin=/opt/kafka/bin

# scram PRINCIPAL: create or update the SCRAM-SHA-512 credential
scram() {
  "$bin/kafka-configs.sh" "${admin[@]}" --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$(cat "$secrets/$1.password")]"
}

# allow PRINCIPAL topic|group NAME literal|prefixed OPERATION...
allow() {
  local principal=$1 kind=$2 name=$3 pattern=$4
  shift 4
  local operations=()
  for operation in "$@"; do operations+=(--operation "$operation"); done
  "$bin/kafka-acls.sh" "${admin[@]}" --add --allow-principal "User:$principal" \
    "--$kind" "$name" --resource-pattern-type "$pattern" "${operations[@]}"
}

# The worker (`sozialhub run`): consume and produce every hub topic, commit offsets in its
# groups (Faust group "<prefix>hub", receipt groups "<prefix>receipts-<channel>",
# tool groups "<prefix>tool-..."), read topic configs
# (`sozialhub topics plan`). No Create, Delete, Alter, AlterConfigs, no cluster rights.
scram sozialhub-hub
allow sozialhub-hub topic "$prefix" prefixed Read Write Describe DescribeConfigs
allow sozialhub-hub group "$prefix" prefixed Read Describe

# The topic job (`sozialhub topics apply`): create what topics.yml declares and compare
# configs. Grant Delete only for the run that uses --delete-unknown, then revoke it.
scram sozialhub-topics
allow sozialhub-topics topic "$prefix" prefixed Create Describe DescribeConfigs

# One principal per vendor: read its own delivery topic, in groups named vendor-<v>.*
for vendor in $vendors; do
  scram "vendor-$vendor"
  allow "vendor-$vendor" topic "${prefix}fachverfahren.$vendor" literal Read Describe
  allow "vendor-$vendor" topic "${prefix}handovers.$vendor" literal Read Describe
  allow "vendor-$vendor" group "vendor-$vendor." prefixed Read Describe
done

"$bin/kafka-acls.sh" "${admin[@]}" --list

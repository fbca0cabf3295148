#!/usr/bin/env bash
# Per-task overhead of the two backends, in one `go test -bench` run: no-op tasks
# on local goroutines (BenchmarkLocalNoop) and invoke round trips through the AWS
# Lambda Runtime Interface Emulator (BenchmarkLambdaNoop, 1 and 4 emulators); then
# the cold first invoke of a fresh emulator. Needs aws-lambda-rie (`make tools`).
#
#   executor/lambda/bench.sh            BENCHTIME=5s executor/lambda/bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'Noop' -benchtime "${BENCHTIME:-2s}" ./executor/local ./executor/lambda
go test -run '^$' -bench 'LambdaColdInvoke' -benchtime 30x ./executor/lambda

#!/usr/bin/env bash
# Regenerates the Go code for psstore.proto. Called by `make proto`.
#
# Needs Debian's protobuf-compiler (protoc 3.21) and the pinned plugins:
#   GOBIN=<repo>/.tools/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   GOBIN=<repo>/.tools/bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# The plugins are taken from <repo>/.tools/bin first, then from PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="$root/.tools/bin:$PATH"
for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || { echo "gen.sh: $tool not found: run \`make tools\` (and apt-get install protobuf-compiler)" >&2; exit 1; }
done
cd "$here"
protoc --proto_path=. \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  psstore.proto

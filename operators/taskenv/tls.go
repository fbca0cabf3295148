package taskenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// PSStoreOptions are the client options for the shards of te: its token, its
// replication factor, and TLS verified against te.PSStoreCA when it is set. Every psstore client of a run —
// workers, coordinators, the CLI's checks — dials with these.
func PSStoreOptions(te operators.TaskEnv) ([]psstore.Option, error) {
	opts := []psstore.Option{psstore.WithToken(te.Token)}
	if te.PSStoreReplicas > 0 {
		opts = append(opts, psstore.WithReplicas(te.PSStoreReplicas))
	}
	if te.PSStoreCA == "" {
		return opts, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(te.PSStoreCA)) {
		return nil, errors.New("psstore_ca holds no PEM certificate: give the CA (or the shards' self-signed certificate) that signed the shards' --tls-cert")
	}
	return append(opts, psstore.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})), nil
}

// TLSHint is what to add to a failed dial's error: without a CA the shard may be
// speaking TLS to a plaintext client, and with one, its certificate may not match.
func TLSHint(te operators.TaskEnv) string {
	if te.PSStoreCA == "" {
		return " (if the shards were started with --tls-cert, name their CA in the backend block: psstore_ca = \"ca.pem\")"
	}
	return " (the shards' certificates must be signed by psstore_ca and name the host or IP in the psstore address)"
}

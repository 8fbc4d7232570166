// Package fedcmipb holds the Go code generated from
// proto/fedcmi/v1/fedcmi.proto, the coordinator-participant protocol.
// Do not edit the generated files; edit the schema and run
// `go generate ./internal/fedcmipb` (see the schema's header for the tools).
package fedcmipb

//go:generate protoc -I ../../proto --go_out=. --go_opt=module=github.com/fedcmi/fedcmi/internal/fedcmipb --go-grpc_out=. --go-grpc_opt=module=github.com/fedcmi/fedcmi/internal/fedcmipb fedcmi/v1/fedcmi.proto

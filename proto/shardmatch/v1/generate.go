// Package smv1 holds the generated Go code of the shardmatch v1 wire schema
// (shardmatch.proto). Do not edit shardmatch.pb.go by hand: change the .proto and run
// `go generate ./proto/...`, which needs protoc (Debian: protobuf-compiler) on PATH.
package smv1

//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --go_out=. --go_opt=paths=source_relative shardmatch.proto"

// Package proto holds the plugin protocol and its generated Go code, checked
// in so that building needs no protoc. Regenerate after editing
// stagecoach.proto with protoc, protoc-gen-go v1.36.6 and
// protoc-gen-go-grpc v1.3.0 on PATH:
//
//	go generate ./plugins/proto
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative stagecoach.proto

module github.com/imgplan/imgplan

go 1.26.0

require (
	github.com/containerd/continuity v0.5.0
	github.com/diskfs/go-diskfs v1.9.4
	github.com/hashicorp/go-multierror v1.1.1
	github.com/klauspost/compress v1.20.3
	github.com/opencontainers/go-digest v1.0.0
	github.com/opencontainers/image-spec v1.1.1
	github.com/spf13/cobra v1.10.2
	github.com/ulikunitz/xz v0.5.15
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/crypto v0.49.0
	golang.org/x/sys v0.49.0
	google.golang.org/protobuf v1.35.1
	lukechampine.com/blake3 v1.4.1
	oras.land/oras-go/v2 v2.6.4
)

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/klauspost/cpuid/v2 v2.0.9 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	golang.org/x/sync v0.24.0 // indirect
)

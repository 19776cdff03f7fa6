module github.com/asm-cni/asm-cni/bench/plugin

go 1.26.8

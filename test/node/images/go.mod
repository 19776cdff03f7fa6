// Test-only stand-in images for the node tier (no dependencies: built with CGO_ENABLED=0 into one static binary).
module asm-cni.test/node-images

go 1.26

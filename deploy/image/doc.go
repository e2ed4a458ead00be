// Package image holds the shardmatch container image's build files (Dockerfile
// for a build host with a registry, Dockerfile.prebuilt and build.sh for a
// machine without one) and the tests that keep them in step. It has no code:
// see README.md.
package image

"""Build: kernels into the cache, modules into the run dir, distro packages, build roots."""

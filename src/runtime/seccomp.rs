//! seccomp: OCI seccomp profiles compiled to BPF with libseccomp, and the default profile.

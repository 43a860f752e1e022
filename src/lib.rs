//! Landlord: segregated, encrypted, verifiably erasable client tenants on Kubernetes.

//! Least-privilege findings (placeholder until written).

//! Ring 2: the mesh core. Owns every policy (peer store, merge rules, planner, diff, relay
//! choice, NAT matrix, collisions, health state machines); pure and virtual-time tested.
//! Imports only `proto` and `identity`. Filled by the mesh-core issue.
#![forbid(unsafe_code)]

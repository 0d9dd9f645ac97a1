//! Ring 3 wiring: the daemon (`wgmesh up`) connects discovery, the mesh core, the platform and
//! the control socket. Filled by the daemon issue.

//! macOS backend: utun + wireguard-go through the UAPI code, and PF_ROUTE messages for
//! addresses and routes. Filled below; untested on a real Mac.
#![forbid(unsafe_code)]

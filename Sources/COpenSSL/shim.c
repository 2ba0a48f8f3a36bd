// The module exists for its header and link flag; see include/shim.h.

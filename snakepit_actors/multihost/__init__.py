"""Workers on other hosts: member nodes, the NodeWatch that places a pool's workers on them,
and the NodeAgent that is a pool's foothold on a member."""

//! The Raft log on disk. (To be written: see the module's task.)

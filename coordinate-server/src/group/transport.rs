//! The links between coordinators. (To be written: see the module's task.)

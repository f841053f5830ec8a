//! Helpers shared by the behaviour tests of parjob.

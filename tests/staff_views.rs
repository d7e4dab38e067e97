//! placeholder until the staff views test lands

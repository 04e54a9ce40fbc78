//! `${NAME}` and `${NAME:-default}` substitution in string values. TODO(helper).

# Login shells: a larger, timestamped history.
HISTSIZE=5000
HISTTIMEFORMAT="%F %T "
export HISTSIZE HISTTIMEFORMAT

# root's login shell settings in the tiny example rootfs
PS1='tiny# '
export PS1

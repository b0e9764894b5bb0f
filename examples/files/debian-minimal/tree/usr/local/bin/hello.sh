#!/bin/sh
# Installed from the example's tree; /usr/local/bin/hello links here.
. /etc/os-release
echo "hello from $(hostname) running ${PRETTY_NAME}"

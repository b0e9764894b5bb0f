# /etc/profile.d/zz-cluster-modules.sh
# Environment modules for the software installed on the cluster's NFS
# share (/opt/apps, mounted from the file server), and the OpenMPI that
# comes with the image.
if [ -d /opt/apps/modulefiles ]; then
    case ":${MODULEPATH}:" in
        *:/opt/apps/modulefiles:*) ;;
        *) export MODULEPATH="${MODULEPATH:+$MODULEPATH:}/opt/apps/modulefiles" ;;
    esac
fi

package e2e

import corev1 "k8s.io/api/core/v1"

// hostPathVolume is a volume of a host directory (what a test adds to a pod to
// collect its files).
func hostPathVolume(name, dir string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}}
}

func volumeMount(name, path string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: name, MountPath: path}
}

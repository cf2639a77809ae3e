package csi

import (
	"context"

	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// SupportedCSIVersions are the CSI versions announced to kubelet.
var SupportedCSIVersions = []string{"1.0.0"}

// RegistrationSocketName is the socket kubelet's plugin watcher finds in
// its plugins_registry directory.
func RegistrationSocketName(driver string) string { return driver + "-reg.sock" }

// registration implements kubelet's plugin registration service, which the
// node-driver-registrar sidecar usually provides.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	d *Driver
}

// GetInfo tells kubelet the driver name and where its CSI socket is.
func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.d.opts.DriverName,
		Endpoint:          r.d.opts.KubeletRegistrationPath,
		SupportedVersions: SupportedCSIVersions,
	}, nil
}

// NotifyRegistrationStatus receives kubelet's verdict. A rejection makes
// /healthz fail, so the liveness probe restarts the shim, as the
// node-driver-registrar does by exiting.
func (r *registration) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.GetPluginRegistered() {
		r.d.rejected.Store("")
		r.d.log.Info("registered with kubelet", "driver", r.d.opts.DriverName, "endpoint", r.d.opts.KubeletRegistrationPath)
	} else {
		r.d.rejected.Store("kubelet rejected the registration: " + st.GetError())
		r.d.log.Error("kubelet rejected the registration", "driver", r.d.opts.DriverName, "err", st.GetError())
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// Registered reports kubelet's last verdict: ok is false with the reason
// when kubelet rejected the plugin.
func (d *Driver) Registered() (ok bool, reason string) {
	v, _ := d.rejected.Load().(string)
	return v == "", v
}

// Package link lets plugins/sdk/sdktest build sdk values whose fields are
// unexported, without widening the sdk's API.
package link

// SetConfig stores the plugin's config block, as JSON, in req, an
// *sdk.Request. The sdk sets it when it is initialised.
var SetConfig func(req any, config []byte)

package app

// publicURL is the dashboard's address as users reach it: --public-url,
// else the listen URL.
func (a *App) publicURL() string {
	if a.cfg.PublicURL != "" {
		return a.cfg.PublicURL
	}
	return a.URL()
}

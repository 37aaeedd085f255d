package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Grant types of Salesforce's OAuth 2.0 token endpoint that a server can use alone.
const (
	grantRefreshToken      = "refresh_token"
	grantClientCredentials = "client_credentials"
)

// grant is the OAuth flow configured to obtain access tokens: "" for a static token.
func (c Config) grant() string {
	switch {
	case c.RefreshToken != "":
		return grantRefreshToken
	case c.ClientID != "" && c.ClientSecret != "":
		return grantClientCredentials
	}
	return ""
}

// authHint says how the operator gets a working token.
func (s *Salesforce) authHint() string {
	switch s.cfg.grant() {
	case grantRefreshToken:
		return "the refresh token flow did not give a working token; check client_id, client_secret and refresh_token"
	case grantClientCredentials:
		return "the client credentials flow did not give a working token; check client_id, client_secret and the app's run-as user"
	}
	return "update config.access_token, or configure client_id and client_secret (and refresh_token) so the plugin gets new tokens itself"
}

// tokenAnswer is the token endpoint's JSON answer.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	InstanceURL  string `json:"instance_url"`
	TokenType    string `json:"token_type"`
}

// obtainToken gets a new access token from the token endpoint with the configured
// grant. A refresh token the endpoint rotates is kept (in memory only: the plugins file
// still holds the old one).
func (s *Salesforce) obtainToken(ctx context.Context) error {
	grant := s.cfg.grant()
	if grant == "" {
		return errors.New("no OAuth flow configured")
	}
	form := url.Values{"grant_type": {grant}, "client_id": {s.cfg.ClientID}}
	if s.cfg.ClientSecret != "" {
		form.Set("client_secret", s.cfg.ClientSecret)
	}
	if grant == grantRefreshToken {
		form.Set("refresh_token", s.refreshToken)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "clickgate-salesforce/"+version)
	a := s.do(req)
	if a.err != nil {
		return fmt.Errorf("token endpoint: %w", a.err)
	}
	t, err := parseToken(a)
	if err != nil {
		return err
	}
	s.accessToken = t.AccessToken
	if t.RefreshToken != "" && t.RefreshToken != s.refreshToken && grant == grantRefreshToken {
		s.refreshToken = t.RefreshToken
		s.log.Warn("the token endpoint rotated the refresh token; the new one is kept in memory only, so a restarted plugin needs a refresh token that still works (turn rotation off for this app, or use the client credentials flow)")
	}
	s.log.Info("obtained an access token", "grant_type", grant)
	return nil
}

// parseToken reads the token endpoint's answer: 200 with an access token, or an OAuth
// error {"error", "error_description"}.
func parseToken(a answer) (tokenAnswer, error) {
	var t tokenAnswer
	if a.status == http.StatusOK && json.Unmarshal(a.body, &t) == nil && t.AccessToken != "" {
		if t.TokenType != "" && !strings.EqualFold(t.TokenType, "Bearer") {
			return t, fmt.Errorf("token endpoint: token type %q, want Bearer", clean(t.TokenType, 40))
		}
		return t, nil
	}
	return t, fmt.Errorf("token endpoint: %d %s", a.status, summary(parseErrors(a.body)))
}

package auth

import (
	"context"
	"fmt"
	"html/template"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/mail"
	"keepwatch/internal/secret"
)

// ChangePassword replaces the signed-in user's password after checking the
// current one, and ends every other session of the user (keep is the hash
// of the session making the change). A user who signs in only through the
// company's identity provider has no password; a reset link sets one.
func (s *Service) ChangePassword(ctx context.Context, ss keepwatch.Session, keep []byte, current, next string, c Client) error {
	u, err := s.cfg.Store.LoginUserByID(ctx, ss.IntegratorID, ss.UserID)
	if err != nil {
		return err
	}
	if u.PasswordHash == "" {
		return keepwatch.Errorf(keepwatch.ECONFLICT, "you sign in through your company and have no password here; to set one, use “Forgot your password?” on the sign-in page")
	}
	now := s.cfg.Now()
	account := "acct:" + u.Email
	if wait := s.accounts.Allow(account, now); wait > 0 {
		return &Limited{wait}
	}
	if len(current) > keepwatch.MaxPasswordLen {
		return keepwatch.Errorf(keepwatch.EINVALID, "that password is too long")
	}
	s.passwordChecks <- struct{}{}
	ok := secret.CheckPassword(u.PasswordHash, current)
	<-s.passwordChecks
	if !ok {
		s.audit(ctx, u.IntegratorID, actor(u.Email), "password.change_failed", u.Email, "wrong current password", c)
		return keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "your current password is not right")
	}
	s.accounts.Reset(account)
	if err := keepwatch.ValidPassword(next, u.Email); err != nil {
		return err
	}
	if next == current {
		return keepwatch.Errorf(keepwatch.EINVALID, "choose a password different from the current one")
	}
	ended, err := s.cfg.Store.SetUserPassword(ctx, u.IntegratorID, u.ID, secret.HashPassword(next), keep)
	if err != nil {
		return err
	}
	s.audit(ctx, u.IntegratorID, actor(u.Email), "password.change", u.Email, "other sessions ended: "+fmt.Sprint(ended), c)
	return nil
}

// MailEnabled reports whether keepwatch can send account mail.
func (s *Service) MailEnabled() bool { return s.cfg.Mail.Enabled() }

// RequestPasswordReset mails a reset link to email if it belongs to an
// account. The answer is the same, and takes the same time, whether it
// does or not: the lookup and the mail happen after the answer. Limits
// apply per source address and per e-mail address here, and per account
// (a few links an hour) when the link is made.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, c Client) error {
	if !s.MailEnabled() {
		return keepwatch.Errorf(keepwatch.EUNAVAILABLE, "this keepwatch server cannot send e-mail; ask an owner of your account to set a new password for you")
	}
	email, err := keepwatch.NormalizeEmail(email)
	if err != nil {
		return keepwatch.Errorf(keepwatch.EINVALID, "enter the e-mail address you sign in with")
	}
	now := s.cfg.Now()
	if wait := s.acct.resetAddresses.Allow(c.Addr, now); wait > 0 {
		return &Limited{wait}
	}
	if wait := s.acct.resetEmails.Allow(email, now); wait > 0 {
		return &Limited{wait}
	}
	s.later("password reset", func(ctx context.Context) { s.mailReset(ctx, email, c) })
	return nil
}

// mailReset makes a reset link for each account of email (one per
// integrator that has a user with this address), if there is one, and
// mails it.
func (s *Service) mailReset(ctx context.Context, email string, c Client) {
	users, err := s.cfg.Store.UsersForLogin(ctx, email)
	if err != nil {
		s.log.Error("password reset", "err", err)
		return
	}
	if len(users) == 0 {
		s.log.Info("password reset for an unknown address", "ip", c.Addr)
		return
	}
	for _, u := range users {
		s.mailResetTo(ctx, u, c)
	}
}

// mailResetTo mails one account a reset link, within its hourly limit.
func (s *Service) mailResetTo(ctx context.Context, u keepwatch.LoginUser, c Client) {
	now := s.cfg.Now()
	n, err := s.cfg.Store.PasswordResetsSince(ctx, u.ID, now.Add(-time.Hour))
	if err != nil {
		s.log.Error("password reset", "err", err)
		return
	}
	if n >= resetsPerHour {
		s.log.Warn("password reset limited for an account", "ip", c.Addr)
		s.audit(ctx, u.IntegratorID, "anonymous", "password.reset_limited", u.Email, fmt.Sprintf("%d links in the last hour", n), c)
		return
	}
	token := RandomToken()
	if err := s.cfg.Store.CreatePasswordReset(ctx, keepwatch.PasswordReset{TokenHash: secret.Hash(token), UserID: u.ID,
		IntegratorID: u.IntegratorID, CreatedAt: now, ExpiresAt: now.Add(resetTTL), RemoteAddr: c.Addr}); err != nil {
		s.log.Error("password reset", "err", err)
		return
	}
	link := strings.TrimRight(s.cfg.PublicURL(), "/") + "/password-reset/" + token
	msg, err := mail.Build(s.cfg.Mail.From, resetMail(u.Email, link, c), now)
	if err == nil {
		err = mail.Send(ctx, s.cfg.Mail, u.Email, msg)
	}
	if err != nil {
		s.log.Error("password reset mail", "err", err)
		s.audit(ctx, u.IntegratorID, "anonymous", "password.reset_request", u.Email, "the mail could not be sent", c)
		return
	}
	s.audit(ctx, u.IntegratorID, "anonymous", "password.reset_request", u.Email, "link mailed, valid 30 minutes", c)
}

var resetHTML = template.Must(template.New("reset").Parse(`<p>Someone (we hope you) asked to set a new password for your keepwatch account {{.Email}}.</p>
<p><a href="{{.Link}}">Set a new password</a></p>
<p>The link works once, for 30 minutes. Setting a new password signs you out everywhere.</p>
<p>If you did not ask for this, ignore this mail: your password stays as it is. The request came from {{.Addr}}.</p>`))

func resetMail(email, link string, c Client) mail.Message {
	text := "Someone (we hope you) asked to set a new password for your keepwatch account " + email + ".\n\n" +
		"Set a new password: " + link + "\n\n" +
		"The link works once, for 30 minutes. Setting a new password signs you out everywhere.\n\n" +
		"If you did not ask for this, ignore this mail: your password stays as it is. The request came from " + c.Addr + ".\n"
	var html strings.Builder
	resetHTML.Execute(&html, map[string]string{"Email": email, "Link": link, "Addr": c.Addr})
	return mail.Message{To: email, Subject: "Set a new keepwatch password", Text: text, HTML: html.String(), Kind: "password-reset",
		Headers: map[string]string{"Auto-Submitted": "auto-generated"}}
}

// PasswordResetUser returns the user a live reset link is for.
func (s *Service) PasswordResetUser(ctx context.Context, token string) (keepwatch.LoginUser, error) {
	if token == "" || len(token) > 100 {
		return keepwatch.LoginUser{}, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this reset link is not valid")
	}
	return s.cfg.Store.PasswordReset(ctx, secret.Hash(token), s.cfg.Now())
}

// ResetPassword sets a new password with a reset link (once) and ends all
// of the user's sessions. The user then signs in, with their second factor
// if they have one.
func (s *Service) ResetPassword(ctx context.Context, token, next string, c Client) (keepwatch.LoginUser, error) {
	u, err := s.PasswordResetUser(ctx, token)
	if err != nil {
		return u, err
	}
	if err := keepwatch.ValidPassword(next, u.Email); err != nil {
		return u, err
	}
	u, err = s.cfg.Store.UsePasswordReset(ctx, secret.Hash(token), s.cfg.Now(), secret.HashPassword(next))
	if err != nil {
		return u, err
	}
	s.accounts.Reset("acct:" + u.Email)
	s.audit(ctx, u.IntegratorID, actor(u.Email), "password.reset", u.Email, "with a mailed link; every session ended", c)
	return u, nil
}

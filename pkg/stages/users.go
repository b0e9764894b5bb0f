package stages

import (
	"errors"
	"fmt"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Users creates and changes groups, then users.
var Users = register(&Kind{Name: "users", Version: 1, Describe: describeUsers})

// UsersParams holds groups and users in manifest order (creation order
// decides the ids that are allocated).
type UsersParams struct {
	Groups []GroupParams `json:"groups,omitempty"`
	Users  []UserParams  `json:"users,omitempty"`
}

// GroupParams is one group.
type GroupParams struct {
	Name    string   `json:"name"`
	GID     *int64   `json:"gid,omitempty"`
	System  bool     `json:"system,omitempty"`
	Members []string `json:"members,omitempty"`
}

// UserParams is one user. A password hash given inline is a parameter; one
// read from a password_file is an input (its digest is in the key, its
// content never in the plan).
type UserParams struct {
	Name         string   `json:"name"`
	UID          *int64   `json:"uid,omitempty"`
	Group        string   `json:"group,omitempty"`
	Groups       []string `json:"groups,omitempty"`
	Shell        string   `json:"shell,omitempty"`
	Home         string   `json:"home,omitempty"`
	CreateHome   *bool    `json:"create_home,omitempty"`
	Comment      string   `json:"comment,omitempty"`
	System       bool     `json:"system,omitempty"`
	PasswordHash string   `json:"password_hash,omitempty"`
	PasswordFile string   `json:"password_file,omitempty"`
}

func describeUsers(m *manifest.Manifest, c *Context) (*Description, error) {
	if len(m.Users)+len(m.Groups) == 0 {
		return nil, nil
	}
	p := &UsersParams{}
	d := &Description{Params: p}
	var errs []error
	for _, g := range m.Groups {
		p.Groups = append(p.Groups, GroupParams{Name: g.Name, GID: g.GID, System: g.System, Members: sortedCopy(g.Members)})
	}
	var names []string
	for _, u := range m.Users {
		up := UserParams{
			Name: u.Name, UID: u.UID, Group: u.Group, Groups: sortedCopy(u.Groups),
			Shell: u.Shell, Home: u.Home, CreateHome: u.CreateHome, Comment: u.Comment,
			System: u.System, PasswordHash: u.PasswordHash,
		}
		if !u.PasswordFile.IsZero() {
			up.PasswordFile = fmt.Sprintf("users.%s.password_file", u.Name)
			dg, err := c.Files.File(u.PasswordFile.Path)
			if err != nil {
				errs = append(errs, problem(u.At("password_file"), "%s: %v", u.PasswordFile.Raw, err))
			}
			d.Inputs = append(d.Inputs, Input{Role: up.PasswordFile, Path: u.PasswordFile.Path, Digest: dg})
		}
		p.Users = append(p.Users, up)
		names = append(names, u.Name)
	}
	var parts []string
	if n := len(p.Groups); n > 0 {
		parts = append(parts, fmt.Sprintf("%d groups", n))
	}
	if len(names) > 0 {
		parts = append(parts, "users "+strings.Join(names, ","))
	}
	d.Summary = strings.Join(parts, "; ")
	return d, errors.Join(errs...)
}

<?php
/*
 * Authentication sources of the test IdP: a real username/password form
 * (exampleauth:UserPass) with one user whose attributes have Casdoor's
 * names (Email, Name, DisplayName, Roles).
 */

$config = [
    'admin' => ['core:AdminPassword'],

    'example-userpass' => [
        'exampleauth:UserPass',
        'alice:alice-password' => [
            'Email' => ['alice@example.com'],
            'Name' => ['alice'],
            'DisplayName' => ['Alice Example'],
            'Roles' => ['posthog-admin', 'staff'],
        ],
    ],
];

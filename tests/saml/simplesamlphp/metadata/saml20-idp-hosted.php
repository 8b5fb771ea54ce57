<?php
/*
 * The hosted IdP of the Portcullis tests (see ../config/config.php).  Its key
 * and certificate are generated per run in SSP_TEST_WORK by the launcher
 * (tests/e2e/simplesamlphp.py).  It insists on signed AuthnRequests and
 * logout messages (HTTP-Redirect signatures checked against the SP
 * certificate from the SP metadata), answers with a signed Assertion
 * (RSA-SHA256) in an unsigned Response, and uses the Name attribute as the
 * NameID (format unspecified), like Casdoor.
 */

$work = getenv('SSP_TEST_WORK');

$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => $work . '/idp.key',
    'certificate' => $work . '/idp.crt',
    'auth' => 'example-userpass',

    'validate.authnrequest' => true,
    'validate.logout' => true,
    'sign.logout' => true,

    'saml20.sign.assertion' => true,
    'saml20.sign.response' => false,
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',

    'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
    'simplesaml.nameidattribute' => 'Name',
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    'assertion.lifetime' => 300,
];
